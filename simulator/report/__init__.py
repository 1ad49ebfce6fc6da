"""Reports: plots (matplotlib, Agg), and documents written both as report.md and as a self-contained
report.html (plots embedded as base64 PNGs). Knows nothing about how runs are made."""
