from .cli import main

main(prog_name="xero-inspector")
