"""Reports for people: the daily report, the story of a day and a week, problem calls, the weekly
summary; their data, sections and charts, notebook rendering and delivery."""
