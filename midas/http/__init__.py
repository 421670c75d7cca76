"""HTTP: the endpoint registry, authentication, problems, consistency and the middlewares."""
