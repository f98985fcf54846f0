from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.migrations.constraints import UniqueConstraint

class Migration(migrations.Migration):
    dependencies = [('models', '0028_outbox_send_before')]

    initial = False

    # "Add to the circle of care" clicked twice added the person twice, and each copy had
    # the session's reminders: the add form now carries a key of its own (once_per_key).

    operations = [
        ops.AddField(
            model_name='AlternateContact',
            name='request_key',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddConstraint(
            model_name='AlternateContact',
            constraint=UniqueConstraint(fields=('client', 'request_key'), name=None),
        ),
    ]
