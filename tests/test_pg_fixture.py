import sqlalchemy as sa


def test_throwaway_postgres_answers_and_has_pgcrypto(pg_url):
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select 1")).scalar() == 1
        digest = conn.execute(sa.text("select encode(hmac('a', 'k', 'sha256'), 'hex')")).scalar()
    assert len(digest) == 64
