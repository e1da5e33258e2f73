"""Analytics and reports: turnover and remuneration in any grouping and period, and period comparisons."""
