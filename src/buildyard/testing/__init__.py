"""In-memory fakes of buildyard's interfaces, for tests of code that uses them."""
