-- Event retention deletes visits that started before its horizon, on both backends.
CREATE INDEX visits_by_start ON visits (start_ts);
