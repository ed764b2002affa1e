DROP INDEX messages_personal_gmail;
ALTER TABLE messages DROP COLUMN personal_gmail;
