"""A generation service that speaks MiniMax's video API, so MiniMax clients generate with a kinema model.

    kinema serve --data-dir serve-data --api-key SECRET          # the shipped toy model on 127.0.0.1:8000
    MINIMAX_API_KEY=SECRET MINIMAX_API_HOST=http://127.0.0.1:8000 \\
        kinema minimax generate "a red circle moves to the right" -o out.mp4

The parts: `app` (the HTTP routes), `protocol` (MiniMax's codes and JSON shapes), `params` (checking a
request against the served model), `store` (the durable SQLite task store), `worker` (generation
processes and their supervisor), `service` (one running service: data folder, recovery, background
loops), `security` (API keys, rate limits, signed URLs), `callbacks`, `config`, `cli`; `web/` is the page at /.
"""
