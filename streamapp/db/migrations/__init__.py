"""SQL migrations, one folder per pipeline scope."""
