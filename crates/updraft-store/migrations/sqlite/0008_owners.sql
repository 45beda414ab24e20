-- Which node holds an event's lease (NULL when none does), and which node drives a
-- workflow execution: a restarting node releases and resumes only its own.
ALTER TABLE async_events ADD COLUMN claimed_by TEXT;
ALTER TABLE workflow_executions ADD COLUMN owner TEXT;
