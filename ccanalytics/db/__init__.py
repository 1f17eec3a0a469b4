"""The database: engines and the embedded server, migrations, attaching to the call processor's
database, schema checks, monthly partitions, retention, shipped SQL, tenants and data problems."""
