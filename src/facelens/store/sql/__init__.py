"""The metadata store in SQL: one session (`session.SqlSession`) over a dialect (`dialect.SQLITE`,
`dialect.POSTGRESQL`), and the two stores that open connections and run migrations (`sqlite.SqliteMetadataStore`,
`postgres.PostgresMetadataStore`, the latter importing psycopg only when used)."""
