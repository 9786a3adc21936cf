-- Browsers and operating systems are named as Plausible names them (device-detector's names:
-- "Microsoft Edge", "Mac", "GNU/Linux"), so that its clients' filters and saved reports
-- (`visit:os==Mac`) find them (README, "Events and statistics"). Names stored before are renamed
-- in events, visits and the rollups of one dimension, one pass over each table. None of the new
-- names was stored before, so no rollup row meets another of its name. Pairs holding a browser or
-- an OS keep their values in JSON: their rows (markers included) go, and queries read those
-- days' raw events for such a pair, as for a pair never rolled up.
UPDATE events SET
    browser = CASE browser WHEN 'Edge' THEN 'Microsoft Edge' WHEN 'Samsung Internet' THEN 'Samsung Browser'
        WHEN 'Webview' THEN 'Mobile App' ELSE browser END,
    os = CASE os WHEN 'macOS' THEN 'Mac' WHEN 'Linux' THEN 'GNU/Linux' WHEN 'ChromeOS' THEN 'Chrome OS' ELSE os END
WHERE browser IN ('Edge', 'Samsung Internet', 'Webview') OR os IN ('macOS', 'Linux', 'ChromeOS');
UPDATE visits SET
    browser = CASE browser WHEN 'Edge' THEN 'Microsoft Edge' WHEN 'Samsung Internet' THEN 'Samsung Browser'
        WHEN 'Webview' THEN 'Mobile App' ELSE browser END,
    os = CASE os WHEN 'macOS' THEN 'Mac' WHEN 'Linux' THEN 'GNU/Linux' WHEN 'ChromeOS' THEN 'Chrome OS' ELSE os END
WHERE browser IN ('Edge', 'Samsung Internet', 'Webview') OR os IN ('macOS', 'Linux', 'ChromeOS');
UPDATE rollups SET value = CASE value WHEN 'Edge' THEN 'Microsoft Edge' WHEN 'Samsung Internet' THEN 'Samsung Browser'
    ELSE 'Mobile App' END
WHERE dim = 'visit:browser' AND value IN ('Edge', 'Samsung Internet', 'Webview');
UPDATE rollups SET value = CASE value WHEN 'macOS' THEN 'Mac' WHEN 'Linux' THEN 'GNU/Linux' ELSE 'Chrome OS' END
WHERE dim = 'visit:os' AND value IN ('macOS', 'Linux', 'ChromeOS');
UPDATE rollup_pieces SET value = CASE value WHEN 'Edge' THEN 'Microsoft Edge' WHEN 'Samsung Internet' THEN 'Samsung Browser'
    ELSE 'Mobile App' END
WHERE dim = 'visit:browser' AND value IN ('Edge', 'Samsung Internet', 'Webview');
UPDATE rollup_pieces SET value = CASE value WHEN 'macOS' THEN 'Mac' WHEN 'Linux' THEN 'GNU/Linux' ELSE 'Chrome OS' END
WHERE dim = 'visit:os' AND value IN ('macOS', 'Linux', 'ChromeOS');
DELETE FROM rollups WHERE dim LIKE '[%' AND (dim LIKE '%"visit:browser"%' OR dim LIKE '%"visit:os"%');
DELETE FROM rollup_pieces WHERE dim LIKE '[%' AND (dim LIKE '%"visit:browser"%' OR dim LIKE '%"visit:os"%');
