from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0018_appointment_moved_from')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Participant',
            name='left_at',
            field=fields.DatetimeField(null=True),
        ),
    ]
