"""The runtime: engine, workers, sweeper and transactional advance."""
