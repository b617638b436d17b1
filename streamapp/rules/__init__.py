"""Pure rules, one module per pipeline: state + input -> decision, no I/O."""
