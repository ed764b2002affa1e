DROP TABLE notification_marks;
DROP TABLE notifications;
DROP TABLE webhooks;
ALTER TABLE channels DROP COLUMN next_check_at;
ALTER TABLE channels DROP COLUMN status_changed_at;
ALTER TABLE channels DROP COLUMN last_error_at;
ALTER TABLE channels DROP COLUMN last_error;
ALTER TABLE channels DROP COLUMN first_failure_at;
ALTER TABLE channels DROP COLUMN failure_count;
