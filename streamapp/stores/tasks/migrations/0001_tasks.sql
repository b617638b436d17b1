-- The task as the fold of its events says it is now. `fact_count` only grows.
CREATE TABLE tasks (
    task_id       text PRIMARY KEY,
    user_id       text,
    content       text,
    status        text NOT NULL CHECK (status IN ('open', 'completed', 'deleted', 'unknown')),
    created_at    timestamptz,
    completed_at  timestamptz,
    deleted_at    timestamptz,
    last_event_at timestamptz,
    fact_count    integer NOT NULL,
    changed_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX tasks_user_idx ON tasks (user_id, status);
CREATE INDEX tasks_changed_idx ON tasks (changed_at);

-- The task's life in event time; replaced whole when the fold changes.
CREATE TABLE task_transitions (
    task_id  text NOT NULL,
    seq      integer NOT NULL,
    user_id  text NOT NULL,
    kind     text NOT NULL,
    at       timestamptz NOT NULL,
    content  text NOT NULL,
    event_id uuid NOT NULL,
    PRIMARY KEY (task_id, seq)
);
CREATE INDEX task_transitions_user_at_idx ON task_transitions (user_id, at);
CREATE INDEX task_transitions_at_idx ON task_transitions (at);

-- Every event received, with what the fold did with it (applied, rejected + why, pending).
CREATE TABLE task_events (
    event_id    uuid PRIMARY KEY,
    task_id     text NOT NULL,
    event       text NOT NULL,
    ts          timestamptz NOT NULL,
    status      text NOT NULL,
    reason      text,
    late        boolean NOT NULL DEFAULT false,
    received_at timestamptz NOT NULL
);
CREATE INDEX task_events_task_idx ON task_events (task_id, ts);

-- Reports: one row per revision; a late event within the grace period adds a revision.
CREATE TABLE task_reports (
    user_id      text NOT NULL,
    start_at     timestamptz NOT NULL,
    end_at       timestamptz NOT NULL,
    revision     integer NOT NULL,
    digest       text NOT NULL,
    content      jsonb NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (user_id, start_at, revision)
);
CREATE INDEX task_reports_range_idx ON task_reports (user_id, start_at, end_at);
