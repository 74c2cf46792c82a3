"""The inspection report: a reviewed folder turned into report.html, report.pdf and findings.geojson.

gather (what the report says), pictures and gpsplot (its images), text (its wording, shared), then one
writer per file: html, pdf (the only module here that uses Qt) and geojson; build runs them in order.
"""
