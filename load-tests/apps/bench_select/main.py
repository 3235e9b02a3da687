def execute(data: dict, conn=None) -> dict:
    cur = conn.cursor()
    cur.execute("SELECT 1")
    (one,) = cur.fetchone()
    cur.close()
    return {"one": one}
