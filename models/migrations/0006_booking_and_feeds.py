from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0005_agenda')]

    initial = False

    operations = [
        ops.AddField(
            model_name='PortalAccount',
            name='calendar_token',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
        ops.AddField(
            model_name='Practice',
            name='cancellation_notice_hours',
            field=fields.SmallIntField(default=24, db_default=24),
        ),
        ops.AddField(
            model_name='Practice',
            name='online_booking',
            field=fields.BooleanField(default=True, db_default=True),
        ),
        ops.AddField(
            model_name='StaffUser',
            name='calendar_token',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
    ]
