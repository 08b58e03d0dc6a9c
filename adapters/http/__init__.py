"""HTTP adapter: FastAPI app factory, routers, envelope, security and schemas."""
