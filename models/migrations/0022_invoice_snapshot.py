from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

# Invoices finalized before the copy existed get it from their issuer and client as they are
# now: the best there is (what their PDF printed until now), and from now on it stays.
FILL_ISSUER = """
UPDATE invoice SET
    issuer_name = (SELECT p.legal_name FROM billing_profile p WHERE p.id = invoice.profile_id),
    issuer_address = (SELECT p.address FROM billing_profile p WHERE p.id = invoice.profile_id),
    issuer_registration = (
        SELECT p.registration FROM billing_profile p WHERE p.id = invoice.profile_id
    ),
    issuer_email = (SELECT p.email FROM billing_profile p WHERE p.id = invoice.profile_id),
    issuer_footer = (SELECT p.footer FROM billing_profile p WHERE p.id = invoice.profile_id)
WHERE status = 'finalized'
"""
FILL_CLIENT = """
UPDATE invoice SET
    client_name = (
        SELECT c.first_name || ' ' || c.last_name FROM client c WHERE c.id = invoice.client_id
    ),
    client_health_id = (SELECT c.health_id FROM client c WHERE c.id = invoice.client_id)
WHERE status = 'finalized' AND client_id IS NOT NULL
"""


class Migration(migrations.Migration):
    dependencies = [('models', '0021_request_keys')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Invoice',
            name='issuer_name',
            field=fields.CharField(default='', db_default='', max_length=200),
        ),
        ops.AddField(
            model_name='Invoice',
            name='issuer_address',
            field=fields.TextField(default='', db_default='', unique=False),
        ),
        ops.AddField(
            model_name='Invoice',
            name='issuer_registration',
            field=fields.TextField(default='', db_default='', unique=False),
        ),
        ops.AddField(
            model_name='Invoice',
            name='issuer_email',
            field=fields.CharField(default='', db_default='', max_length=254),
        ),
        ops.AddField(
            model_name='Invoice',
            name='issuer_footer',
            field=fields.TextField(default='', db_default='', unique=False),
        ),
        ops.AddField(
            model_name='Invoice',
            name='client_name',
            field=fields.CharField(default='', db_default='', max_length=201),
        ),
        ops.AddField(
            model_name='Invoice',
            name='client_health_id',
            field=fields.CharField(default='', db_default='', max_length=60),
        ),
        ops.AddField(
            model_name='Consultation',
            name='request_key',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
        ops.RunSQL([FILL_ISSUER, FILL_CLIENT], reverse_sql="SELECT 1"),
    ]
