"""The HTTP service: Rekognition's JSON 1.1 wire protocol over Starlette (`facelens serve`).

Modules: `app` (ASGI app and request flow), `protocol` (service model, validation, encoding), `auth` (SigV4),
`credentials` (access keys), `errors` (wire errors), `workers` (bounded pool), `s3` (S3Object reads),
`wire` (one adapter per operation: parameters -> typed service call), `shapes` (every Rekognition dict),
`dispatch` (pools, S3 images), `server` (uvicorn and graceful shutdown).
"""
