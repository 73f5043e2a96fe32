"""OpenAI-compatible speech gateway: FastAPI in front of the Triton `g2p` and `kokoro` models."""
