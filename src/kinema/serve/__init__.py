"""A generation service that speaks MiniMax video API."""
