"""Planning (pure): matrix expansion, conditions, the DAG of job instances, priorities, selection."""
