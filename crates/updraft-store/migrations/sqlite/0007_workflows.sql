-- Workflow executions: where each stands (its current state and that state's input),
-- moved on in one transaction per step together with the step's history entry, so a
-- restart resumes every running execution at the state it had reached.
CREATE TABLE workflow_executions (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    app TEXT NOT NULL,
    definition TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    cause TEXT,
    state TEXT NOT NULL,
    state_input TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    wake_at BIGINT,
    seq BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX workflow_executions_status ON workflow_executions(status);

CREATE TABLE workflow_history (
    execution TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT,
    detail TEXT,
    PRIMARY KEY (execution, seq)
);
