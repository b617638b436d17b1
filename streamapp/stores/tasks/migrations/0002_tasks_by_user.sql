-- GET /users/{user_id}/tasks pages a user's tasks by creation time (never created: first), then id.
CREATE INDEX tasks_user_created_idx
    ON tasks (user_id, (coalesce(created_at, '-infinity'::timestamptz)), task_id);
