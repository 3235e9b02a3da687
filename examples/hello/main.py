def execute(data: dict, conn=None) -> dict:
    name = str(data.get("name", "")).strip()
    if name:
        return {"message": "hello, %s" % name}
    return {"message": "ok"}
