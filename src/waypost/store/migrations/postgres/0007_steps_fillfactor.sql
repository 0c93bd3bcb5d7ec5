-- waypost schema 7: leave a fifth of every page of `steps` free. A step row is updated
-- several times in its life (ready, claimed, succeeded); with room on its page the new
-- version stays there, which measured ~20% faster chains than packed pages.
ALTER TABLE steps SET (fillfactor = 80)
