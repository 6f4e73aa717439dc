#!/bin/bash
# Run once by the postgres image (/docker-entrypoint-initdb.d) on an empty data directory: one database
# per app, each owned by its own login role, and closed to every other role, so neither app can read
# the other's tables. The apps' own migrations (docker/prestart.sh) then create the schema as the owner.
#
# Env: POSTGRES_USER, POSTGRES_DB (set by the image), POOL_DB_PASSWORD, SERVICES_DB_PASSWORD, and
# optionally POOL_DB_NAME / SERVICES_DB_NAME (default pool / services; the role has the same name).
set -euo pipefail

create_database() {
    # psql's :"name" and :'password' quote the values, so neither can break out of the statement.
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        -v name="$1" -v password="$2" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
}

create_database "${POOL_DB_NAME:-pool}" "${POOL_DB_PASSWORD:?POOL_DB_PASSWORD must be set}"
create_database "${SERVICES_DB_NAME:-services}" "${SERVICES_DB_PASSWORD:?SERVICES_DB_PASSWORD must be set}"
