"""PostgreSQL: the pool service and the migrations runner."""
