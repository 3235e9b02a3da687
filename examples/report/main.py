"""A report: monthly sales per region, computed in Python, drawn by the page."""

REGIONS = ["North", "South", "East", "West"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]


def _rows(year: int) -> list:
    rows = []
    for r, region in enumerate(REGIONS):
        for m, month in enumerate(MONTHS):
            amount = 1000 + ((year * 7 + r * 131 + m * 57) % 900)
            rows.append({"region": region, "month": month, "amount": amount})
    return rows


def execute(data: dict, conn=None) -> dict:
    try:
        year = int(data.get("year", 2026))
    except (TypeError, ValueError):
        raise ValueError("year must be a number such as 2026")
    if not 2000 <= year <= 2100:
        raise ValueError("year must be between 2000 and 2100")
    rows = _rows(year)
    totals = {region: sum(x["amount"] for x in rows if x["region"] == region) for region in REGIONS}
    return {"year": year, "months": MONTHS, "regions": REGIONS, "rows": rows, "totals": totals}
