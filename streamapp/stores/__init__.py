"""PostgreSQL stores a pipeline keeps beside its migrations, one module (or package) per pipeline."""
