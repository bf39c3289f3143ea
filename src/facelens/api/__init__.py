"""The HTTP service: Rekognition's JSON 1.1 wire protocol over Starlette (`facelens serve`).

Modules: `app` (ASGI app and request flow), `protocol` (service model, validation, encoding), `auth` (SigV4),
`credentials` (access keys), `errors` (wire errors), `workers` (bounded pool), `s3` (S3Object reads),
`operations` (one module per operation family), `server` (uvicorn and graceful shutdown).
"""
