from tortoise import migrations
from tortoise.migrations import operations as ops
from models.notifications import OutboxStatus
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0027_online_booking_limit')]

    initial = False

    # A reminder, confirmation or offer that stopped being true or useful before it could go
    # (cancelled, moved, begun, over) is dropped at delivery, never sent (server/outbox.py).

    operations = [
        ops.AlterField(
            model_name='OutboxMessage',
            name='status',
            field=fields.CharEnumField(default=OutboxStatus.QUEUED, description='QUEUED: queued\nSENT: sent\nDELIVERED: delivered\nFAILED: failed\nDROPPED: dropped', enum_type=OutboxStatus, max_length=10),
        ),
        ops.AddField(
            model_name='OutboxMessage',
            name='appointment_id',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='OutboxMessage',
            name='send_before',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
