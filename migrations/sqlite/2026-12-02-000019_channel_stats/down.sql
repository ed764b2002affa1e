DROP TABLE channel_daily_stats;
