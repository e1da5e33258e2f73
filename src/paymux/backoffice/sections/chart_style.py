"""``/backoffice/charts.css``: pygal's style sheet for the charts (see ``paymux.backoffice.charts``)."""

from __future__ import annotations

from fastapi.responses import Response

from paymux.backoffice.charts import stylesheet
from paymux.backoffice.framework import Section, register, section_router

router = section_router()
register(Section("chart_style", router))


@router.get("/charts.css")
async def charts_css() -> Response:
    return Response(stylesheet(), media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})
