-- waypost schema 4: a step whose task hands its work to another system keeps running,
-- with no lease, until that system completes or fails it with this token.
ALTER TABLE steps ADD COLUMN completion_token TEXT;
