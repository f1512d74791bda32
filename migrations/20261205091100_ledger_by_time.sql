-- The console's money taken today sums the ledger from a time on (issue 23).
CREATE INDEX ledger_created ON ledger (created_at);
