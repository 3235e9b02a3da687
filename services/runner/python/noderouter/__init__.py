"""NodeRouter SDK for apps, importable as ``noderouter`` inside the runner.

    from noderouter import progress

    def execute(data, conn=None):
        for i in range(10):
            ...
            progress((i + 1) * 10)          # 0-99 while working; 100 is written on completion
        return {"done": True}

``progress`` records the job's progress in ``noderouter_core.job_queue`` and publishes it
on ``job.progress.<app>.<job_id>``. Outside an async job it does nothing, so the same
code runs on the sync path.

What the app prints (stdout, stderr) and logs (``logging``) during a call reaches the
platform's log with the app, the request id and the stream; ``request_id()`` gives the
call's request id.

``read_upload(handle)`` returns the bytes of a file uploaded to a route declaring
``upload`` (``data["body"]["files"][i]``: ``id``, ``name``, ``size``, ``content_type``).
``download(content, name, content_type)`` stores a file and returns a short-lived link
(``download_url``) served as an attachment; return it from a route, a sync call or an
async job. Both ask the runner over the worker's channel: the app itself holds no key
to the object store.
"""

__all__ = ["progress", "job_id", "request_id", "read_upload", "download", "__version__"]
__version__ = "1.0.0"

# Set by the runner's worker loop: a function sending one frame header to the runner,
# the id of the job being run (None on the sync path), the request id of the call (of
# the job's submit, for a job), and a function sending a frame and returning the
# runner's answer (header, body), for file requests.
_emit = None
_request = None
_job_id = None
_request_id = None


def _file_request(op, body=b""):
    if _request is None:
        raise RuntimeError("files are available only inside a call run by NodeRouter")
    header, out = _request({"file": op}, body)
    if not header.get("ok"):
        raise ValueError(header.get("error") or "the file request failed")
    return header, out


def job_id():
    """The id of the async job being run, or None on the sync path."""
    return _job_id


def request_id():
    """The request id of the call being served (for a job, the id of the request that
    submitted it), as the platform's log and ``X-Request-Id`` show it; None outside a
    call. ``logging`` records carry it too, as ``%(request_id)s``."""
    return _request_id


def progress(percent, message=None):
    """Report progress (0-99) of the current async job. Returns True when recorded;
    outside a job (a sync call) it records nothing and returns False."""
    try:
        value = int(percent)
    except (TypeError, ValueError):
        raise ValueError("progress() takes a number from 0 to 99, got %r" % (percent,))
    if _emit is None or _job_id is None:
        return False
    value = max(0, min(99, value))
    frame = {"progress": value}
    if message is not None:
        frame["message"] = str(message)[:500]
    _emit(frame)
    return True


def read_upload(handle):
    """The bytes of an uploaded file, from its handle in ``data["body"]["files"]``."""
    if not isinstance(handle, dict) or not ("id" in handle or "data" in handle):
        raise ValueError("read_upload() takes a handle from data['body']['files']")
    if "data" in handle:  # a handle carrying its bytes
        import base64

        return base64.b64decode(handle["data"])
    _, body = _file_request({"op": "read", "upload": str(handle["id"])})
    return body


def download(content, name, content_type="application/octet-stream"):
    """Stores ``content`` (bytes or str) as a file named ``name`` and returns a link to
    it: ``{"download_url", "name", "size", "content_type", "expires_at"}``. The link is
    short-lived and served with ``Content-Disposition: attachment``; return it as is
    (a route answers with it) or inside a result."""
    if isinstance(content, str):
        content = content.encode("utf-8")
    header, _ = _file_request(
        {"op": "store", "name": str(name), "content_type": str(content_type)}, bytes(content)
    )
    return header["link"]
