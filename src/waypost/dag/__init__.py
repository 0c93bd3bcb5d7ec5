"""DAG front-end: `@task`, `@flow`, the graph they compile to and its driver."""
