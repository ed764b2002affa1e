DROP TABLE channel_domains;
DROP TABLE channels;
