-- The inventory read model keeps each item's photo and document links.
ALTER TABLE inv_items
    ADD COLUMN photos    jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN documents jsonb NOT NULL DEFAULT '[]';
