"""pytest glue for optbench (registered as the ``optbench`` pytest11 plugin)."""
