"""The analysis-jobs example: a campaign of CPU-bound compute jobs whose results are committed at home.

``paglets-analysis-jobs --tasks 3 --target-runtime 3`` (or ``paglets examples analysis``) creates an
:class:`~paglets.examples.analysis_jobs.agent.AnalysisCampaignPaglet` on the entry host; it submits the
analysis jobs (compute jobs that go to hosts with free slots), commits each result to an SQLite database
on its host as it arrives, and tells the user when all are in. Only the standard library is used.
"""
