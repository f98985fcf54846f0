from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0019_participant_left_at')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Payment',
            name='request_key',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
    ]
