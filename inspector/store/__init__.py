"""The SQLite file: its schema and migrations, opening it to read or to write, the one insert
path, the filter language compiled to SQL, and the queries that list, load and sum up flows.
Imports only from ingest and utils."""
