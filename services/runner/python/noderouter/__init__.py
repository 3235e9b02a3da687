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
``upload`` (``data["body"]["files"][i]``: ``name``, ``size``, ``content_type``).
"""

__all__ = ["progress", "job_id", "request_id", "read_upload", "download", "__version__"]
__version__ = "1.0.0"

# Set by the runner's worker loop: a function sending one frame header to the runner,
# the id of the job being run (None on the sync path) and the request id of the call
# (of the job's submit, for a job).
_emit = None
_job_id = None
_request_id = None


def job_id():
    """The id of the async job being run, or None on the sync path."""
    return _job_id


def request_id():
    """The request id of the call being served (for a job, the id of the request that
    submitted it), as the platform's log and ``X-Request-Id`` show it; None outside a
    call. ``logging`` records carry it too, as ``%(request_id)s``."""
    return _request_id


def progress(percent, message=None):
    """Report progress (0-99) of the current async job. Returns True when recorded."""
    if _emit is None or _job_id is None:
        return False
    try:
        value = int(percent)
    except (TypeError, ValueError):
        raise ValueError("progress() takes a number from 0 to 99, got %r" % (percent,))
    value = max(0, min(99, value))
    frame = {"progress": value}
    if message is not None:
        frame["message"] = str(message)[:500]
    _emit(frame)
    return True


def read_upload(handle):
    """The bytes of an uploaded file, from its handle in ``data["body"]["files"]``."""
    import base64

    if not isinstance(handle, dict) or "data" not in handle:
        raise ValueError("read_upload() takes a handle from data['body']['files']")
    return base64.b64decode(handle["data"])


def download(content, name, content_type="application/octet-stream"):
    """A route answer offering ``content`` (bytes or str) as a file: the caller gets a
    short-lived link (``download_url``) served as an attachment named ``name``."""
    import base64

    if isinstance(content, str):
        content = content.encode("utf-8")
    return {"download": {"name": str(name), "content_type": str(content_type),
                         "data": base64.b64encode(bytes(content)).decode("ascii")}}
