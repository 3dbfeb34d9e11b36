from inspector.cli import main

if __name__ == "__main__":
    main(prog_name="xero-inspector")
