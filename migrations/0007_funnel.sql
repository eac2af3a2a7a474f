-- Landing-page views of a link, by kind (the top of its funnel): counters, never recounted.
-- A row is made by a link's first view; a link without one has no views. Views are counted
-- by one statement (`INSERT ... ON CONFLICT DO UPDATE` in src/store/postgres/statements.rs)
-- that locks only this link's row here, never the link's row in `links`, so a view never waits
-- on a redemption, nor a redemption on a view. Like sessions, it carries no foreign key
-- (which would lock the link's row).

CREATE TABLE __SCHEMA__.link_views (
    link_id     uuid PRIMARY KEY,
    human       bigint NOT NULL DEFAULT 0 CHECK (human >= 0),
    scanner     bigint NOT NULL DEFAULT 0 CHECK (scanner >= 0),
    unconfirmed bigint NOT NULL DEFAULT 0 CHECK (unconfirmed >= 0)
);
