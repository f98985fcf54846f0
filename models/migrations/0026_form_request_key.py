from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.migrations.constraints import UniqueConstraint

class Migration(migrations.Migration):
    dependencies = [('models', '0025_slot_closed')]

    initial = False

    # A form sent once carries the "Send" form's key: pressed twice, the client gets one
    # form. Unique within the client's forms, as once_per_key looks; old rows have none.

    operations = [
        ops.AddField(
            model_name='FormAssignment',
            name='request_key',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddConstraint(
            model_name='FormAssignment',
            constraint=UniqueConstraint(fields=('client', 'request_key'), name=None),
        ),
    ]
