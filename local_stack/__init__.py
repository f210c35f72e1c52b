"""The embedded default for development: a project-run PostgreSQL, generated secrets and supervisord."""
