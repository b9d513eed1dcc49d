"""What every actor process shares: its command line, config, logs, the link to the scheduler
(members and workers), the control client, pause points for tests. Imports no actor package."""
