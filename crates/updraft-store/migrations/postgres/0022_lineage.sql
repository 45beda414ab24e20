-- Recursive loop detection: how often each function has run in the chain of
-- invocations that sent an event or a queue message (`updraft_model::Lineage` in its
-- text form; empty for one sent from outside any chain).
ALTER TABLE async_events ADD COLUMN lineage TEXT NOT NULL DEFAULT '';
ALTER TABLE queue_messages ADD COLUMN lineage TEXT NOT NULL DEFAULT '';
